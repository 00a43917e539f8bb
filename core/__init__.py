"""renderflow.core, in four wings: `model` (the network, its pipeline and checkpoints), `shading`
(the physics prior it starts from), `io` (files and VFX conventions, no torch) and `shot` (shots,
workflows and the demo)."""
