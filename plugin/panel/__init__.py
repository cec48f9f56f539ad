"""The browser control panel: a local web page (and OBS dock) that drives the live agent."""
