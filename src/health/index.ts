export { HealthChecker, backendKey, DEFAULT_EXPECT_STATUS } from './checker';
export type { Health, HealthChange, HealthRamp, HealthTarget, BackendHealthStatus, HealthCheckerOptions } from './checker';
export { HealthMonitor } from './monitor';
export type { BackendHealth } from './monitor';
export { HealthMachine, policyOf, DEFAULT_FLAP, DEFAULT_SLOW_START_STEPS } from './state';
export type { HealthPolicy, FlapPolicy, SlowStartPolicy, Transition } from './state';
export { startProbe } from './checks';
export type { Probe, ProbeResult, RunningProbe } from './checks';
