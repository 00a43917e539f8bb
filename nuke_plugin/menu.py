# RenderFlow for Nuke: the Nodes menu entry and a toolbar icon (GUI sessions only).
import nuke

toolbar = nuke.menu("Nodes").addMenu("RenderFlow", icon="RenderFlow.png")
toolbar.addCommand("RenderFlow", "nuke.createNode('RenderFlow')", icon="RenderFlow.png")
