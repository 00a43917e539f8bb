"""Files and VFX conventions: EXR, AOV profiles, cameras, env maps, colour, outputs.

numpy and OpenImageIO only: reading a shot never imports torch.
"""
