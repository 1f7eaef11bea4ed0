"""A prop's first stage, the image: the prompt wrapped so the text-to-image model draws the object alone.

TripoSR reads one object, whole, seen from the side, on a plain backdrop it can be cut from; a prompt for a
"barrel" alone may give a barrel in a cellar. The wrapped prompt is what the generation runs and records.
"""

PROP_PROMPT = (
    "{prompt}, a single object, whole and centred, isolated on a plain light grey studio background, "
    "three-quarter view, soft even lighting, product photo"
)
PROP_NEGATIVE = "cropped, cut off, several objects, scene, landscape, busy background, text, watermark"


def wrap_prompt(prompt: str) -> str:
    """The prompt the image is drawn from (already wrapped text is kept as it is, for Use Settings)."""
    prompt = prompt.strip()
    suffix = PROP_PROMPT.split("}", 1)[1]
    return prompt if prompt.endswith(suffix) else PROP_PROMPT.format(prompt=prompt)


def unwrap_prompt(prompt: str) -> str:
    """The artist's own words of a wrapped prompt."""
    suffix = PROP_PROMPT.split("}", 1)[1]
    return prompt[: -len(suffix)] if prompt.endswith(suffix) else prompt


def wrap_negative(negative: str) -> str:
    negative = negative.strip()
    return (
        f"{negative}, {PROP_NEGATIVE}"
        if negative and PROP_NEGATIVE not in negative
        else negative or PROP_NEGATIVE
    )
