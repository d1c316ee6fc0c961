"""The SQL pubsub store: four tables, SQL in '?' style that runs on SQLite and PostgreSQL.

Items are ordered by a per-node sequence number kept in the node's row (``next_seq``),
so no auto-increment syntax is needed; re-publishing an id gives the item a new number,
making it the newest. Each publication, with the trimming to the node's maximum, is one
transaction. Subscriptions keep the subscriber's bare JID in a column of its own so that
deleting an account finds its full-JID subscriptions without LIKE patterns (a localpart
may hold '%' and '_').
"""

import json

from zope.interface import implementer

from summitd.plugins.pubsub.store import IPubSubStore, Item, ItemPage, Node, Subscription, select
from summitd.storage.schema import Migration, apply_migrations

COMPONENT = "pubsub"
CHUNK = 400     # ids per IN (...) list: well under every engine's parameter limit

MIGRATIONS = (
    Migration(1, (
        "CREATE TABLE pubsub_nodes ("
        " service TEXT NOT NULL,"
        " node TEXT NOT NULL,"
        " config TEXT NOT NULL,"            # JSON object of pubsub#node_config fields
        " next_seq BIGINT NOT NULL,"        # sequence number of the next published item
        " PRIMARY KEY (service, node)"
        ")",
        "CREATE TABLE pubsub_items ("
        " service TEXT NOT NULL,"
        " node TEXT NOT NULL,"
        " item_id TEXT NOT NULL,"
        " seq BIGINT NOT NULL,"
        " publisher TEXT NOT NULL,"         # bare JID ('' once its account is deleted)
        " payload TEXT NOT NULL,"           # the payload element as XML ('' for none)
        " PRIMARY KEY (service, node, item_id)"
        ")",
        "CREATE INDEX pubsub_items_order ON pubsub_items (service, node, seq)",
        "CREATE TABLE pubsub_affiliations ("
        " service TEXT NOT NULL,"
        " node TEXT NOT NULL,"
        " jid TEXT NOT NULL,"               # bare JID
        " affiliation TEXT NOT NULL,"
        " PRIMARY KEY (service, node, jid)"
        ")",
        "CREATE INDEX pubsub_affiliations_jid ON pubsub_affiliations (jid)",
        "CREATE TABLE pubsub_subscriptions ("
        " service TEXT NOT NULL,"
        " node TEXT NOT NULL,"
        " jid TEXT NOT NULL,"               # as subscribed: bare or full JID
        " subid TEXT NOT NULL,"
        " bare TEXT NOT NULL,"              # the subscriber's bare JID
        " state TEXT NOT NULL,"
        " options TEXT NOT NULL,"           # JSON object of subscription options
        " PRIMARY KEY (service, node, jid, subid)"
        ")",
        "CREATE INDEX pubsub_subscriptions_bare ON pubsub_subscriptions (bare)",
    )),
)

_NODE_TABLES = ("pubsub_items", "pubsub_affiliations", "pubsub_subscriptions", "pubsub_nodes")


def _chunks(values):
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _marks(values):
    return ", ".join("?" for _ in values)


@implementer(IPubSubStore)
class SQLStore:
    def __init__(self, database):
        self._db = database

    def _run(self, description, fn, *args):
        return self._db.runInteraction(f"pubsub: {description}", fn, *args)

    def setup(self):
        return apply_migrations(self._db, COMPONENT, MIGRATIONS)

    # -- metadata --------------------------------------------------------------------------

    def load(self, service):
        return self._run("load", _load, service)

    def create_node(self, service, node):
        def create(txn):
            txn.execute("INSERT INTO pubsub_nodes (service, node, config, next_seq) VALUES (?, ?, ?, 1)",
                        (service, node.name, json.dumps(node.config)))
            for jid, affiliation in node.affiliations.items():
                _set_affiliation(txn, service, node.name, jid, affiliation)

        return self._run("create node", create)

    def update_config(self, service, name, config):
        return self._run("configure", lambda txn: txn.execute(
            "UPDATE pubsub_nodes SET config = ? WHERE service = ? AND node = ?",
            (json.dumps(config), service, name)))

    def delete_node(self, service, name):
        def delete(txn):
            for table in _NODE_TABLES:
                txn.execute(f"DELETE FROM {table} WHERE service = ? AND node = ?", (service, name))

        return self._run("delete node", delete)

    def set_affiliation(self, service, name, jid, affiliation):
        return self._run("affiliation", _set_affiliation, service, name, jid, affiliation)

    def set_subscription(self, service, name, subscription):
        return self._run("subscribe", lambda txn: txn.execute(
            "INSERT INTO pubsub_subscriptions (service, node, jid, subid, bare, state, options)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (service, node, jid, subid)"
            " DO UPDATE SET state = excluded.state, options = excluded.options",
            (service, name, subscription.jid, subscription.subid, subscription.jid.partition("/")[0],
             subscription.state, json.dumps(subscription.options))))

    def delete_subscription(self, service, name, jid, subid):
        return self._run("unsubscribe", lambda txn: txn.execute(
            "DELETE FROM pubsub_subscriptions WHERE service = ? AND node = ? AND jid = ? AND subid = ?",
            (service, name, jid, subid)))

    # -- items -------------------------------------------------------------------------------

    def publish(self, service, name, item, keep):
        return self._run("publish", _publish, service, name, item, keep)

    def retract(self, service, name, ids):
        def retract(txn):
            removed = []
            for chunk in _chunks(list(ids)):
                rows = txn.execute(f"SELECT item_id FROM pubsub_items WHERE service = ? AND node = ?"
                                   f" AND item_id IN ({_marks(chunk)})", (service, name, *chunk)).fetchall()
                found = [r[0] for r in rows]
                if found:
                    txn.execute(f"DELETE FROM pubsub_items WHERE service = ? AND node = ?"
                                f" AND item_id IN ({_marks(found)})", (service, name, *found))
                removed.extend(found)
            return [i for i in ids if i in removed]

        return self._run("retract", retract)

    def purge(self, service, name):
        return self._run("purge", lambda txn: txn.execute(
            "DELETE FROM pubsub_items WHERE service = ? AND node = ?", (service, name)))

    def items(self, service, name, query):
        return self._run("items", _items, service, name, query)

    # -- accounts ------------------------------------------------------------------------------

    def delete_account(self, txn, jid):
        bare = jid.full()
        for table in _NODE_TABLES:
            txn.execute(f"DELETE FROM {table} WHERE service = ?", (bare,))
        txn.execute("DELETE FROM pubsub_affiliations WHERE jid = ?", (bare,))
        txn.execute("DELETE FROM pubsub_subscriptions WHERE bare = ?", (bare,))
        txn.execute("UPDATE pubsub_items SET publisher = '' WHERE publisher = ?", (bare,))


def _load(txn, service):
    nodes = {name: Node(name, json.loads(config)) for name, config in txn.execute(
        "SELECT node, config FROM pubsub_nodes WHERE service = ?", (service,)).fetchall()}
    for name, jid, affiliation in txn.execute(
            "SELECT node, jid, affiliation FROM pubsub_affiliations WHERE service = ?", (service,)).fetchall():
        if name in nodes:
            nodes[name].affiliations[jid] = affiliation
    for name, jid, subid, state, options in txn.execute(
            "SELECT node, jid, subid, state, options FROM pubsub_subscriptions WHERE service = ?",
            (service,)).fetchall():
        if name in nodes:
            nodes[name].subscriptions[jid, subid] = Subscription(jid, subid, state, json.loads(options))
    return nodes


def _set_affiliation(txn, service, name, jid, affiliation):
    if affiliation is None:
        txn.execute("DELETE FROM pubsub_affiliations WHERE service = ? AND node = ? AND jid = ?",
                    (service, name, jid))
        return
    txn.execute("INSERT INTO pubsub_affiliations (service, node, jid, affiliation) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (service, node, jid) DO UPDATE SET affiliation = excluded.affiliation",
                (service, name, jid, affiliation))


def _publish(txn, service, name, item, keep):
    seq = txn.execute("SELECT next_seq FROM pubsub_nodes WHERE service = ? AND node = ?",
                      (service, name)).fetchone()[0]
    txn.execute("UPDATE pubsub_nodes SET next_seq = ? WHERE service = ? AND node = ?", (seq + 1, service, name))
    txn.execute("INSERT INTO pubsub_items (service, node, item_id, seq, publisher, payload)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (service, node, item_id)"
                " DO UPDATE SET seq = excluded.seq, publisher = excluded.publisher, payload = excluded.payload",
                (service, name, item.id, seq, item.publisher, item.payload))
    newest_first = [r[0] for r in txn.execute(
        "SELECT item_id FROM pubsub_items WHERE service = ? AND node = ? ORDER BY seq DESC",
        (service, name)).fetchall()]
    dropped = newest_first[keep:]
    for chunk in _chunks(dropped):
        txn.execute(f"DELETE FROM pubsub_items WHERE service = ? AND node = ? AND item_id IN ({_marks(chunk)})",
                    (service, name, *chunk))
    dropped.reverse()   # oldest first
    return dropped


def _items(txn, service, name, query):
    ordered = [r[0] for r in txn.execute(
        "SELECT item_id FROM pubsub_items WHERE service = ? AND node = ? ORDER BY seq", (service, name)).fetchall()]
    chosen, count, first, truncated = select(ordered, query)
    found = {}
    for chunk in _chunks(chosen):
        for item_id, payload, publisher in txn.execute(
                f"SELECT item_id, payload, publisher FROM pubsub_items WHERE service = ? AND node = ?"
                f" AND item_id IN ({_marks(chunk)})", (service, name, *chunk)).fetchall():
            found[item_id] = Item(item_id, payload, publisher)
    return ItemPage([found[i] for i in chosen], count, first, truncated)
