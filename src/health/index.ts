export { HealthChecker, backendKey, DEFAULT_EXPECT_STATUS } from './checker';
export type { Health, HealthChange, HealthTarget, BackendHealthStatus, HealthCheckerOptions } from './checker';
export { HealthMonitor } from './monitor';
export { startProbe } from './checks';
export type { Probe, ProbeResult, RunningProbe } from './checks';
