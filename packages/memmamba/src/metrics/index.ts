/**
 * The paper's memory-fidelity metrics, as plain functions returning plain numbers:
 *
 *   const r = await metrics.etmf(params, tokens, { distances: [1, 16, 256] });   // Eq. 21
 *   const c = await metrics.eclmf(params, tokens, { gaps: [2, 5, 10] });         // Eq. 24/25
 *
 * and their lower levels on given states (`etmfFromStates`, `eclmfFromStates`,
 * `crossLayerFidelity`), which the tests check on cases whose answer is known.
 */
import { crossLayerFidelity, eclmf, eclmfFromStates, layerRepresentations } from "./eclmf.ts";
import { etmf, etmfFromStates, tokenReconstruction } from "./etmf.ts";

export {
  crossLayerFidelity, ECLMF_GAPS, ECLMF_LAMBDA, eclmf, eclmfFromStates, layerRepresentations, type EclmfOptions, type EclmfResult,
} from "./eclmf.ts";
export {
  ETMF_DISTANCES, etmf, etmfFromStates, tokenReconstruction, type EtmfModelOptions, type EtmfOptions, type EtmfReconstruction, type EtmfResult,
} from "./etmf.ts";
export { cholesky, choleskySolve, frobenius, gramCross, ridge } from "./linalg.ts";

/** The memory-fidelity metrics in one namespace: ETMF (Eq. 21), ECLMF (Eq. 24/25) and their parts. */
export const metrics = { etmf, eclmf, etmfFromStates, eclmfFromStates, crossLayerFidelity, tokenReconstruction, layerRepresentations } as const;
