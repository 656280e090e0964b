/**
 * The brewcast consumer SDK: every event of a partner or shop, once, in
 * order, from MQTT push and the REST history under one position.
 *
 * Imports `src/domain/` and the `mqtt` package only (test/unit/client-imports.test.ts).
 */
export { Consumer, createConsumer, type OrderEvent } from "./consumer.ts";
export {
  type CatchUpReason,
  type ConsumerEvents,
  type ConsumerOptions,
  type ConsumerPhase,
  type ConsumerStatus,
  type EventHandler,
  ResyncRequiredError,
} from "./consumer-types.ts";
export { ApiError, createEventsApi, type EventsApi, type EventsPage } from "./events-api.ts";
export {
  createFileStore,
  createMemoryStore,
  type FileStoreOptions,
  type Position,
  type PositionStore,
} from "./position-store.ts";
