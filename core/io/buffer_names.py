"""The canonical buffers' names and channel counts (ARCHITECTURE §2): the standard library only, so
that the Nuke node's layer pickers read the same table as the AOV profiles."""

# Canonical buffers and their channel counts. `glossiness` is read only to make roughness (1 - g);
# `diffuse_albedo` ((1 - metallic) · base colour, what most renderers' albedo AOVs hold) and
# `specular_colour` (their specular/reflection filter, the base colour on metals) only to make albedo.
BUFFER_CHANNELS = {
    "beauty": 3,
    "alpha": 1,
    "albedo": 3,
    "diffuse_albedo": 3,
    "specular_colour": 3,
    "normal": 3,
    "depth": 1,
    "roughness": 1,
    "metallic": 1,
    "specular": 1,
    "glossiness": 1,
    "mask": 1,
}
# The buffers a compositor picks a layer for in the Nuke node (the rest come with the beauty or the
# profile: beauty, alpha, mask; glossiness is a roughness).
PICKABLE_BUFFERS = (
    "albedo",
    "diffuse_albedo",
    "specular_colour",
    "normal",
    "depth",
    "roughness",
    "metallic",
    "specular",
)
