"""The live agent: its loop, configuration, devices (virtual camera, virtual microphone) and state."""
