"""Pictures: shaders, images, blending, transforms and the output window (OpenGL through
pyglet).  pyglet is imported on the first frame a gl node draws, so a patch without gl
nodes never loads it, and ``--headless`` runs render offscreen through EGL."""

#: Helpers that import pyglet at once: the registry does not scan them for node types.
NOT_NODE_MODULES = ("context", "render", "commands")
