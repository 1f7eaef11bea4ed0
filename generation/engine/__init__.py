"""Everything that runs a torch model: the request, the worker thread, model sources and cache, seamless
wrap, per-call options, devices and step previews. torch and diffusers are imported inside functions."""
