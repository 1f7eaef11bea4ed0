"""Getting ready to generate: installing the dependencies, the model catalog and downloads, tiny
offline test models, and the self-test."""
