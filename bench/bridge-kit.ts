/**
 * The old import path of the bridge benches' part of the bench library (bench/lib/, children in
 * bench/children/): benches written against it keep compiling. New code imports from bench/lib/
 * directly, by purpose.
 */
export { type BenchPartner, createPartners, pinNormal, waitCaughtUp } from "./lib/admin.ts";
export { type LoopStats, memoryOf } from "./lib/child-tools.ts";
export { type Kid, spawnKid } from "./lib/children.ts";
export {
  type LatencyReport,
  type SessionKind,
  type SubscriberSpec,
  subscriberSpecs,
} from "./lib/consumers.ts";
export { cpuMsOf, nowMs, rssMibOf, sleep, watchProcess } from "./lib/machine.ts";
export { startMosquitto } from "./lib/mosquitto.ts";
export { freePort } from "./lib/net.ts";
export { type LoadRig, startLoadRig } from "./lib/rig.ts";
export { median, percentile } from "./lib/stats.ts";
export { type Commits, orderItems, type WriteRequest, type WriteTarget } from "./lib/writer.ts";
