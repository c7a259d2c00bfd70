"""Inference pipelines, one per family (declared in audiotools.families): what a person does
with a trained model, on audio of any sample rate and channel count. `audiotools.load` returns
the pipeline of whatever it loads."""
