/**
 * The `brewcast` command's help texts, apart from the command (which runs on
 * import) so that `npm run docs` can put them in the README.
 */

export const USAGE = `usage: brewcast <command>

commands:
  start          run the API, the embedded MQTT broker and the bridge in one process
  broker         run the MQTT broker alone (several share REDIS_URL behind a TCP load balancer)
  bridge         run the bridge alone, publishing to BREWCAST_MQTT_URL
  migrate        apply pending database migrations and exit
  check-config   print the effective configuration (secrets redacted) and exit
  tail           print a partner's or shop's events as JSON lines, once and in order (brewcast tail --help)

Configuration is environment only; see the README's configuration table.`;

export const TAIL_USAGE = `usage: brewcast tail --api URL --mqtt URL --id CREDENTIAL --secret SECRET
                     [--after SEQ] [--count N] [--shop ID] [--partner ID] [--name NAME] [--store FILE]
                     [--watermark MS]

Prints each event of the credential's scope as one JSON line on stdout, every
event once and in seq order (MQTT push, REST catch-up and gap filling through
the consumer SDK). Errors and state changes go to stderr; with a TTY there, a
status line shows state, seq and lag. What can heal (the network, 429, 5xx) is
retried and said once; an answer that would be the same again (a bad
credential, a shop or partner it may not read) exits 1.

  --after SEQ     start after this seq (default 0; a --store position wins)
  --count N       exit after N events
  --shop ID       one shop only (required for a device credential)
  --partner ID    the partner id (default: read from the history)
  --name NAME     the persistent MQTT session's name (default "tail")
  --store FILE    keep the position in FILE (atomic writes) to resume after a restart
  --watermark MS  the server's BREWCAST_WATERMARK_MS (default 5000)

Exit status: 0 done, 1 error, 3 resync needed (the log changed or the position expired).`;
