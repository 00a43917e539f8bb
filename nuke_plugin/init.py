# RenderFlow for Nuke: paths only (this also runs under `nuke -t`, where there is no UI).
# Put this folder on NUKE_PATH; install pyzmq, numpy and renderflow's client in Nuke's Python (docs/NUKE.md).
import nuke

nuke.pluginAddPath("icons")
