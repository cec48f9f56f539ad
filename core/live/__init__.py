"""The live agent: microphone -> lip model -> renderer -> virtual camera, every frame."""
