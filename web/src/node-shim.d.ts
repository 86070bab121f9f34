// src/bpf/api.ts (pulled in by the API types) names Node's Buffer in load options the
// dashboard never uses; this keeps the browser build free of @types/node.
type Buffer = Uint8Array;
