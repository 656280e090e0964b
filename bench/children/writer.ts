/**
 * The writer child (lib/children.ts `spawnKid("writer")`): the paced writer of lib/writer.ts alone,
 * ringing the doorbell after each commit: the path of a writer in another process than the bridge.
 *
 * Commands: write.
 */
import type { OrderEvent } from "../../src/domain/events.ts";
import { runChild, serveRpc } from "../lib/children.ts";
import { makeAppender, productModule, runWriter, type WriteRequest } from "../lib/writer.ts";

runChild("writer", async () => {
  const { createDoorbell } =
    await productModule<typeof import("../../src/store/doorbell.ts")>("store/doorbell");
  let wakeMode: WriteRequest["wake"] = "doorbell";
  let ring: (event: OrderEvent) => void = () => {};
  const writer = await makeAppender((event) => {
    if (wakeMode !== "none") ring(event);
  });
  const doorbell = createDoorbell(writer.db);
  ring = (event) => doorbell.ring(event);
  serveRpc(
    {},
    async (cmd, args) => {
      if (cmd !== "write") throw new Error(`unknown command ${cmd}`);
      const request = args as WriteRequest;
      wakeMode = request.wake;
      return runWriter(request, writer.appender);
    },
    async () => {
      await doorbell.flush();
      await writer.db.close();
    },
  );
});
