/**
 * The Vigil console (DESIGN.md "The console"): forensic review in the browser. It talks to the log API
 * at its own origin (the log serves it at /console/, `vigil console` forwards /v1/* to the log) and
 * checks every receipt, signature and commitment here with @vigil/client against the policy the
 * reviewer loaded: the log's answer is never taken on its word.
 */
import { render } from 'preact';
import { App } from './app.js';

render(<App />, document.getElementById('app')!);
