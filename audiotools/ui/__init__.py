"""The web UI of `audiotools ui`: one Gradio page with a tab per loaded model (what its family
does: generate, continue, inpaint, reconstruct, classify) and an experiments tab over a dora
dir. Needs the `ui` extra (gradio, matplotlib); training never imports this package."""
