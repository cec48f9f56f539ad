"""OBS integration over obs-websocket v5: events -> avatar state, scene set-up."""
