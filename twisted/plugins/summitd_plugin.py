"""Makes ``twistd summitd`` exist. Keep it light: it is imported at every plugin scan."""

from twisted.application.service import ServiceMaker

summitd = ServiceMaker("summitd", "summitd.tap", "An XMPP server.", "summitd")
