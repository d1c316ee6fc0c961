"""Just enough of Data Forms (XEP-0004) for challenges: build a form, read a submission.

Submissions come from unauthenticated clients, so reading is defensive: only
``<field/>`` children in jabber:x:data count, values are bounded in number and size,
and a form that is not of the expected type or FORM_TYPE is refused with a clear
``bad-request``.
"""

from twisted.words.xish import domish

from summitd.core.errors import StanzaError

NS_DATA = "jabber:x:data"
MAX_FIELDS = 64
MAX_VALUES = 16
MAX_VALUE_LENGTH = 4096


def form(form_type, type="form", title=None, instructions=None):
    """A new ``<x xmlns='jabber:x:data'/>`` with its hidden FORM_TYPE field."""
    x = domish.Element((NS_DATA, "x"))
    x["type"] = type
    if title:
        x.addElement("title", content=title)
    if instructions:
        x.addElement("instructions", content=instructions)
    if form_type:
        add_field(x, "FORM_TYPE", form_type, type="hidden")
    return x


def add_field(x, var, value=None, type=None, label=None, required=False):
    field = x.addElement("field")
    field["var"] = var
    if type:
        field["type"] = type
    if label:
        field["label"] = label
    if required:
        field.addElement("required")
    values = value if isinstance(value, (list, tuple)) else ([] if value is None else [value])
    for v in values:
        field.addElement("value", content=str(v))
    return field


def find_form(elements):
    """The first jabber:x:data form among ``elements``, or None."""
    for child in elements:
        if child.name == "x" and child.uri == NS_DATA:
            return child
    return None


def read(x, form_type=None, type="submit"):
    """{var: [values]} of a submitted form; bad-request if it is not one (of ``form_type``)."""
    if x is None or x.getAttribute("type") != type:
        raise StanzaError("bad-request", f"expected a data form of type '{type}'")
    fields = {}
    for field in x.elements():
        if field.uri != NS_DATA or field.name != "field":
            continue
        var = field.getAttribute("var")
        if not var or len(fields) >= MAX_FIELDS:
            continue
        values = [str(v) for v in field.elements() if v.uri == NS_DATA and v.name == "value"]
        if len(values) > MAX_VALUES or any(len(v) > MAX_VALUE_LENGTH for v in values):
            raise StanzaError("not-acceptable", f"the field {var!r} is too large")
        fields[var] = values
    if form_type is not None and fields.get("FORM_TYPE", [None])[0] != form_type:
        raise StanzaError("bad-request", f"expected a form of FORM_TYPE {form_type}")
    return fields


def value(fields, var):
    """The first value of a field ('' when absent)."""
    values = fields.get(var)
    return values[0] if values else ""
