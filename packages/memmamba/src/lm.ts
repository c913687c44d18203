/**
 * The language model's functions in one namespace:
 *
 *   const params = lm.init(random.key(0), preset("tiny"));
 *   const { logits, aux } = lm.apply(params, tokens);           // parallel
 *   const value = lm.loss(params, tokens, targets);
 *   let state = lm.initState(params.config, B);                 // recurrent
 *   const { logits, state: next } = lm.step(params, token, state);
 *   const { logits, state } = lm.applyChunked(params, tokens, { chunk: 64 });
 */
import { apply, initLM, loss } from "./model.ts";
import { initState, stateElementCount } from "./state.ts";
import { applyChunked, feed, step } from "./stream.ts";

/** The language model's functions in one namespace (see the module note). */
export const lm = { init: initLM, apply, loss, initState, step, applyChunked, feed, stateElementCount } as const;
