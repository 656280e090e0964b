/**
 * Limits before login. An accepted connection holds a file descriptor and
 * memory before it has proved anything, so an unauthenticated flood is
 * bounded three ways:
 *  - each listener holds at most `maxPerListener` connections (TCP and TLS
 *    through node's `server.maxConnections`, which closes the extra socket at
 *    accept; WebSocket counted here);
 *  - one source address holds at most `maxPendingPerAddress` connections that
 *    have not logged in yet (here);
 *  - a connection that sends no CONNECT in time is closed (Aedes's
 *    `connectTimeout`, set by the caller).
 * Logged-in connections leave the per-address count, so a busy load balancer
 * address is limited only while its clients are still logging in.
 */

export type GateRefusal = "listener_full" | "address_pending";

export interface ConnectionGate {
  /**
   * Admits a connection from `address` that has not logged in yet; returns the function that
   * gives its pending slot back (call it at login and at close; extra calls do nothing), or the
   * refusal.
   */
  admit(address: string): (() => void) | GateRefusal;
  /** A listener's own count (WebSocket); returns the function to call at close, or the refusal. */
  admitToListener(listener: { open: number }): (() => void) | GateRefusal;
  refused(reason: GateRefusal): void;
  readonly refusals: Readonly<Record<GateRefusal, number>>;
  /** Connections not logged in yet, over all addresses. */
  pending(): number;
}

export const createConnectionGate = (limits: {
  maxPerListener: number;
  maxPendingPerAddress: number;
}): ConnectionGate => {
  const pendingByAddress = new Map<string, number>();
  let pendingTotal = 0;
  const refusals: Record<GateRefusal, number> = { listener_full: 0, address_pending: 0 };

  return {
    admit(address) {
      const held = pendingByAddress.get(address) ?? 0;
      if (held >= limits.maxPendingPerAddress) {
        refusals.address_pending++;
        return "address_pending";
      }
      pendingByAddress.set(address, held + 1);
      pendingTotal++;
      let given = false;
      return () => {
        if (given) return;
        given = true;
        pendingTotal--;
        const left = (pendingByAddress.get(address) ?? 1) - 1;
        if (left === 0) pendingByAddress.delete(address);
        else pendingByAddress.set(address, left);
      };
    },
    admitToListener(listener) {
      if (listener.open >= limits.maxPerListener) {
        refusals.listener_full++;
        return "listener_full";
      }
      listener.open++;
      let closed = false;
      return () => {
        if (closed) return;
        closed = true;
        listener.open--;
      };
    },
    refused(reason) {
      refusals[reason]++;
    },
    refusals,
    pending: () => pendingTotal,
  };
};
