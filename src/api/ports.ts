/**
 * What the HTTP API needs from the rest of the system, and nothing more. The
 * API owns these ports; the store implements them (src/main.ts hands its
 * repositories in, and the compiler checks they fit), so the API imports only
 * domain code.
 */
import type { EventPage, EventPageText, EventQuery, OrderChange } from "../domain/events.ts";
import type { DeliveryStatus } from "../domain/ladder.ts";
import type {
  CreatedHistoryItem,
  CreatedHistoryQuery,
  CreateOrderBody,
  Order,
  OrderStatus,
  OrdersPage,
  OrdersQuery,
} from "../domain/orders.ts";
import type {
  CreateCredentialBody,
  Credential,
  Partner,
  PartnerState,
  Shop,
  StateChange,
  StateTransition,
} from "../domain/partners.ts";
import type { Scope } from "../domain/scope.ts";

/** Orders, each change with its event in one transaction; every call within the caller's scope. */
export interface OrdersPort {
  create(scope: Scope, body: CreateOrderBody, idempotencyKey?: string): Promise<OrderChange>;
  get(scope: Scope, orderId: string): Promise<Order>;
  setStatus(scope: Scope, orderId: string, status: OrderStatus): Promise<OrderChange>;
  list(scope: Scope, query: OrdersQuery): Promise<OrdersPage>;
  createdHistory(scope: Scope, query: CreatedHistoryQuery): Promise<CreatedHistoryItem[]>;
}

/** A page of the event log (GET /v1/events). */
export type ReadEvents = (query: EventQuery) => Promise<EventPage>;

/** A page of the event log as JSON text, for GET /v1/events to send as it is. */
export type ReadEventsText = (query: EventQuery) => Promise<EventPageText>;

/** Partners and shops, and the partner state (the kill switch), for the admin API. */
export interface PartnersPort {
  create(id: string, name: string): Promise<Partner>;
  get(id: string): Promise<Partner>;
  list(): Promise<Partner[]>;
  createShop(partnerId: string, id: string, name: string): Promise<Shop>;
  listShops(partnerId: string): Promise<Shop[]>;
  setState(id: string, state: PartnerState, change?: StateChange): Promise<Partner>;
  audit(id: string, limit: number): Promise<StateTransition[]>;
}

/** Credentials, for the admin API. */
export interface CredentialsPort {
  create(partnerId: string, body: CreateCredentialBody): Promise<{ credential: Credential; secret: string }>;
  revoke(credentialId: string): Promise<Credential>;
  registerCertificate(credentialId: string, fingerprint: string): Promise<Credential>;
  list(partnerId: string): Promise<Credential[]>;
}

/** One partner's delivery status; undefined for no such partner. */
export type ReadDeliveryStatus = (partnerId: string) => Promise<DeliveryStatus | undefined>;

/** Every partner's delivery status (the console's live view). */
export type ReadAllDeliveryStatus = () => Promise<DeliveryStatus[]>;
