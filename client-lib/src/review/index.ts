// Forensic review (DESIGN.md "Forensic review"): pure, browser-safe logic shared by the `vigil` review
// commands and the web console. Re-exports only.
export * from './time.js';
export * from './policy-from-log.js';
export * from './records.js';
export * from './sessions.js';
export * from './transcript.js';
export * from './search.js';
export * from './bundle.js';
export * from './tool-definitions.js';
export * from './follow.js';
