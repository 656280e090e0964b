/**
 * Support for the tests of the shipped Mosquitto configs: render the lines a
 * partner edits (found by their `# EDIT(name)` markers, so the shipped file is
 * what runs). Running `mosquitto -c` and `mosquitto_sub`: test/support/mosquitto.ts.
 */
import { readFileSync } from "node:fs";

export const MOSQUITTO_DIR = new URL("../../mosquitto/", import.meta.url);

export const readShipped = (file: string): string => readFileSync(new URL(file, MOSQUITTO_DIR), "utf8");

export interface BridgeSettings {
  partner: string;
  /** host:port of brewcast's MQTT listener. */
  address: string;
  username: string;
  password: string;
  clientId: string;
}

/** The markers partner-bridge.conf must carry, each directly above the line it marks. */
export const EDIT_MARKERS = ["partner", "address", "username", "password", "clientid"] as const;
type EditMarker = (typeof EDIT_MARKERS)[number];

const EDIT = /^#\s*EDIT\(([a-z]+)\):/;

/** The marked lines: the first directive (non-comment, non-blank line) after each `# EDIT(name):`. */
export const markedLines = (text: string): { marker: string; index: number; line: string }[] => {
  const lines = text.split("\n");
  const marked: { marker: string; index: number; line: string }[] = [];
  lines.forEach((line, index) => {
    const match = EDIT.exec(line);
    if (!match) return;
    const target = lines.findIndex((next, i) => i > index && next.trim() !== "" && !next.startsWith("#"));
    if (target >= 0) marked.push({ marker: match[1]!, index: target, line: lines[target]! });
  });
  return marked;
};

/** Replaces exactly the marked lines, as the partner guide tells a partner to. */
export const renderPartnerBridge = (text: string, settings: BridgeSettings): string => {
  const lines = text.split("\n");
  const edit: Record<EditMarker, (line: string) => string> = {
    partner: (line) => line.replaceAll("acme", settings.partner),
    address: () => `address ${settings.address}`,
    username: () => `remote_username ${settings.username}`,
    password: () => `remote_password ${settings.password}`,
    clientid: () => `remote_clientid ${settings.clientId}`,
  };
  for (const { marker, index, line } of markedLines(text)) {
    const change = edit[marker as EditMarker];
    if (!change) throw new Error(`unknown EDIT marker ${marker}`);
    lines[index] = change(line);
  }
  return lines.join("\n");
};
