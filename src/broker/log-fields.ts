/**
 * A refused login's username, made fit for a log line: as it is only when it
 * has the shape of a credential id (a client that swaps username and
 * password would otherwise write its secret into the log); anything else as
 * a short hash, enough to tell repeats apart and useless for recovering a
 * secret. Other client input is clipped with `clipClientInput` (src/log.ts).
 */
import { createHash } from "node:crypto";
import { CREDENTIAL_ID_PATTERN } from "../domain/ids.ts";

/** A login's username as a log field: a credential id as it is, anything else as `sha256:` and 12 hex digits. */
export const usernameForLog = (username: string | undefined): string | undefined => {
  if (username === undefined) return undefined;
  if (CREDENTIAL_ID_PATTERN.test(username)) return username;
  return `sha256:${createHash("sha256").update(username, "utf8").digest("hex").slice(0, 12)}`;
};
