"""Session reliability extensions bundled with summitd."""

from summitd.extensions.dropin import ExtensionFactory

stream_management = ExtensionFactory(
    "stream_management", "Stream Management: acks and resumption (XEP-0198).",
    "summitd.plugins.stream_management")
csi = ExtensionFactory("csi", "Client State Indication (XEP-0352).", "summitd.plugins.csi")
