"""The servers ``bench/compare.py`` runs side by side: summitd and, when installed, Debian's
Prosody and ejabberd, each from a config template in this folder, with its own ports, data
directory, pid and accounts (made with the server's own format or admin tool)."""
