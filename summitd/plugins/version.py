"""Software Version (XEP-0092) and Software Information (XEP-0232): the server says which
software it runs, which version, and when that version was released.

The release date: the XMPP community asked servers to declare name, version and release
date, so that operators and users can spot software that has not been updated in years.
XEP-0232 has no field for it, and XEP-0068 (1.3, field names) wants a field that a project
adds to a form type managed by the XSF to carry the project's own namespace in Clark
notation. Hence the field ``{https://summitd.example/softwareinfo}release_date``
(text-single, YYYY-MM-DD) in the ``urn:xmpp:dataforms:softwareinfo`` form that the
server's disco#info carries (XEP-0128). ``summitctl version --json`` tells the same.

The operating system is not disclosed, in neither protocol: XEP-0092 §4 makes it optional
and XEP-0232's security considerations warn that it helps attackers.
"""

from twisted.words.xish import domish
from wokkel.data_form import Field, Form

from summitd.core import events
from summitd.core.iq import SERVER
from summitd.extensions.base import Extension
from summitd.version import NAME, RELEASE_DATE, VERSION

NS_VERSION = "jabber:iq:version"
NS_SOFTWARE_INFO = "urn:xmpp:dataforms:softwareinfo"
RELEASE_DATE_FIELD = "{https://summitd.example/softwareinfo}release_date"


def _version(iq, to_jid):
    query = domish.Element((NS_VERSION, "query"))
    query.addElement("name", content=NAME)
    query.addElement("version", content=VERSION)
    return query


def software_info_form():
    """The XEP-0232 form (a new element each time: it becomes a child of a reply)."""
    form = Form("result", formNamespace=NS_SOFTWARE_INFO, fields=[
        Field("text-single", "software", NAME),
        Field("text-single", "software_version", VERSION),
        Field("text-single", RELEASE_DATE_FIELD, RELEASE_DATE),
    ])
    return form.toElement()


def build(context, config):
    context.iq("get", SERVER, NS_VERSION, "query", _version)
    context.add_feature(NS_VERSION)
    context.hook(events.SERVER_DISCO_FORMS, lambda host: (software_info_form(),))
    return Extension(context)
