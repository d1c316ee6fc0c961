"""An example third-party summitd extension, shipped as its own pip package."""
