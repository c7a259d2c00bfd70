"""Samplers shared by the generative families, the CLI and the UI, one module per kind:
`diffusion` (ODE/SDE samplers with classifier-free guidance and inpainting) and `tokens`
(token sampling). Import from the module: both have a `sample`."""
