// xmpp.js (@xmpp/client, which speaks SASL2, Bind 2 and FAST) against a running summitd.
//
// alice and bob log in with their passwords (SASL2 SCRAM-SHA-1, Bind 2 with a tag, FAST
// token requested by xmpp.js itself), exchange a message both ways, alice logs out, and a
// new alice client with the same user-agent id and a WRONG password logs in again: only
// her FAST token can get her in. Prints one JSON line: {"ok": true|false, ...}.
//
// node scenario.mjs --host 127.0.0.1 --port PORT --timeout SECONDS
// env: SCENARIO_ALICE_PASSWORD, SCENARIO_BOB_PASSWORD, NODE_EXTRA_CA_CERTS (the server cert)

import { client, xml } from "@xmpp/client";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith("--")) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const service = `xmpp://${args.host}:${args.port}`;
const result = { ok: false, reasons: [] };
const AGENT = "0b8e3b4e-6f2a-4b1c-9d3e-5a7f1c2d3e4f";

function connect(username, password, tag, agentId) {
  const xmpp = client({
    service,
    domain: "localhost",
    username,
    password,
    resource: tag,
    userAgent: xml("user-agent", { id: agentId ?? crypto.randomUUID() }, xml("software", {}, "xmpp.js")),
  });
  xmpp.reconnect.stop();
  xmpp.on("error", (err) => result.reasons.push(`${username}: ${err.message || err}`));
  return xmpp;
}

function nextMessage(xmpp, from) {
  return new Promise((resolve) => {
    xmpp.on("stanza", (stanza) => {
      if (stanza.is("message") && stanza.getChild("body") && stanza.attrs.from === from) {
        resolve({ from: stanza.attrs.from, to: stanza.attrs.to, body: stanza.getChildText("body") });
      }
    });
  });
}

async function scenario() {
  const alice = connect("alice", process.env.SCENARIO_ALICE_PASSWORD, "xmppjs", AGENT);
  const bob = connect("bob", process.env.SCENARIO_BOB_PASSWORD, "xmppjs-bob");
  const aliceJid = (await alice.start()).toString();
  const bobJid = (await bob.start()).toString();
  result.alice_jid = aliceJid;
  result.bob_jid = bobJid;

  const toAlice = nextMessage(alice, bobJid);
  await bob.send(xml("message", { to: aliceJid, type: "chat" }, xml("body", {}, "hello alice, from bob")));
  result.alice_received = await toAlice;
  const toBob = nextMessage(bob, aliceJid);
  await alice.send(xml("message", { to: bobJid, type: "chat" }, xml("body", {}, "hello bob, from alice")));
  result.bob_received = await toBob;

  const token = await alice.fast.fetchToken();
  result.token_mechanism = token?.mechanism ?? null;
  result.token_expiry = token?.expiry ?? null;
  await alice.stop();

  const again = connect("alice", "not-her-password", "xmppjs", AGENT);
  await again.fast.saveToken(token);
  result.fast_jid = (await again.start()).toString();
  await again.stop();
  await bob.stop();

  result.ok =
    result.alice_jid.startsWith("alice@localhost/xmppjs/") &&
    result.bob_jid.startsWith("bob@localhost/xmppjs-bob/") &&
    result.alice_received.body === "hello alice, from bob" &&
    result.bob_received.body === "hello bob, from alice" &&
    result.token_mechanism === "HT-SHA-256-NONE" &&
    result.fast_jid.startsWith("alice@localhost/xmppjs/");
  if (!result.ok) result.reasons.push("unexpected results");
}

const timer = setTimeout(() => {
  result.reasons.push(`timed out after ${args.timeout} s`);
  console.log(JSON.stringify(result));
  process.exit(1);
}, Number(args.timeout || 30) * 1000);

try {
  await scenario();
} catch (err) {
  result.ok = false;
  result.reasons.push(String(err?.stack || err));
}
clearTimeout(timer);
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
