"""The physics prior the model starts from: Deferred shading, the lighting scale, view rays and
keyframe reprojection. Nothing here is learned."""
