/**
 * The tests of aedes-persistence's abstract suite that brewcast's session
 * persistence departs from on purpose, each with why. A session is a
 * position in the log, not a queue of copies: `outgoingEnqueue*` keep
 * nothing and `subscriptionsByTopic` matches nothing (so Aedes enqueues
 * nothing per message), and a resumed session replays the log instead
 * (src/sessions/session-persistence.ts).
 */
const QUEUE = "nothing is queued per message: a resumed session replays the log after its position";
const BY_TOPIC = "subscriptionsByTopic matches nothing, so that Aedes enqueues nothing per message";

export const DEPARTURES: Record<string, string> = {
  "store and look up subscriptions by topic": BY_TOPIC,
  "QoS 0 subscriptions, restored but not matched": BY_TOPIC,
  "same topic, different QoS": BY_TOPIC,
  "replace subscriptions": BY_TOPIC,
  "add duplicate subs to persistence for qos > 0": BY_TOPIC,
  "get subscriptions list after an unsubscribe": BY_TOPIC,
  "add outgoing packet and stream it": QUEUE,
  "add outgoing packet for multiple subs and stream to all": QUEUE,
  "add outgoing packet as a string and pump": QUEUE,
  "add outgoing packet as a string and stream": QUEUE,
  "add outgoing packet and stream it twice": QUEUE,
  "add outgoing packet and update messageId": QUEUE,
  "add 2 outgoing packet and clear messageId": QUEUE,
  "add many outgoing packets and clear messageIds": QUEUE,
  "update to publish w/ same messageId": QUEUE,
  "update to pubrel": QUEUE,
};
