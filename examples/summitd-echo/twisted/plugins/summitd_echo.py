"""Declares the echo extension to summitd (found by Twisted's plugin scan)."""

from summitd.extensions.dropin import ExtensionFactory

echo = ExtensionFactory("echo", "Echoes IQ payloads (an example extension).", "summitd_echo.echo")
