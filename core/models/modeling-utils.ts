import * as tf from '@tensorflow/tfjs';
import type { HfCheckpoint, HfConfig } from '../checkpoints/hf-folder';
import type { TensorMap } from '../checkpoints/safetensors';

/**
 * How a model is built from a checkpoint: parameters kept as tf.Variables under their checkpoint names (so that
 * loading is key-for-key and TTT can train them), registered by each module through its ParamScope, and the model
 * interfaces the rest of the code uses. The layers themselves are in layers.ts.
 */

// ---------------------------------------------------------------------------------------------------------------
// Parameters

/**
 * A module's view of the checkpoint: the tensors under its prefix. A block built from `h.3` asks for
 * `attn.c_attn.weight` and registers the checkpoint's `h.3.attn.c_attn.weight`, as nanoGPT's named submodules load
 * key for key.
 */
export class ParamScope {
  constructor(
    private readonly register: (name: string, shape: number[]) => tf.Variable,
    readonly prefix: string,
  ) {}

  /** Registers the checkpoint tensor `<prefix>.<name>` as a trainable variable, asserting its shape. */
  param(name: string, shape: number[]): tf.Variable {
    return this.register(this.qualify(name), shape);
  }

  /** The scope of a submodule: `scope.sub('attn')` registers `<prefix>.attn.*`. */
  sub(name: string): ParamScope {
    return new ParamScope(this.register, this.qualify(name));
  }

  private qualify(name: string): string {
    return this.prefix === '' ? name : `${this.prefix}.${name}`;
  }
}

export class PretrainedModel {
  /**
   * Trainable weights, keyed by the checkpoint's own tensor names (prefix included), so they save back as-is. Kept
   * in registration order, which the trainer follows (its gradient-norm sum, its saved states): a module registers
   * its tensors in a fixed order.
   */
  readonly params = new Map<string, tf.Variable>();

  constructor(
    readonly config: HfConfig,
    private readonly weights: TensorMap,
    /** Where the weights came from, for error messages. */
    private readonly source: string,
    /** Prefixes the checkpoint may put before our names (`bert.`, `roberta.`, ...); tried in order. */
    private readonly prefixes: string[] = [''],
  ) {}

  /** The checkpoint's tensors under `prefix` (`''`: the top level), for a module to register its parameters. */
  protected scope(prefix = ''): ParamScope {
    return new ParamScope((name, shape) => this.param(name, shape), prefix);
  }

  /** Registers the checkpoint tensor `name` as a trainable variable, asserting its shape. */
  protected param(name: string, shape: number[]): tf.Variable {
    const found = this.lookup(name);
    if (!found) {
      const candidates = this.prefixes.map((p) => `'${p}${name}'`).join(' or ');
      this.fail(`${this.source}: tensor ${candidates} is missing (model_type ${this.config.model_type})`);
    }
    const [key, t] = found;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      this.fail(
        `${this.source}: tensor ${key} has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(shape)}`,
      );
    }
    // A second variable for the same tensor would train apart from the first (and leak when replaced here).
    if (this.params.has(key)) this.fail(`${this.source}: tensor ${key} is registered twice`);
    // No variable name: tfjs names must be unique per process, and several models may be loaded at once.
    const init = tf.tensor(t.data, shape, 'float32');
    const v = tf.variable(init, true);
    init.dispose();
    this.params.set(key, v);
    return v;
  }

  /** True when the checkpoint stores `name` (used for optional tensors such as an untied lm_head). */
  protected has(name: string): boolean {
    return this.lookup(name) !== undefined;
  }

  private lookup(name: string): [string, { shape: number[]; data: Float32Array }] | undefined {
    for (const prefix of this.prefixes) {
      const t = this.weights.get(prefix + name);
      if (t) return [prefix + name, t];
    }
    return undefined;
  }

  /**
   * Asserts that every checkpoint tensor was used, as nanoGPT's from_pretrained asserts matching key counts, then
   * frees the raw checkpoint arrays. A tensor left over means a misnamed checkpoint or one of another architecture
   * variant, whose weights would otherwise be dropped without a word. `knownUnused` matches what a family's
   * checkpoints carry that the model does not read (causal-mask and rotary-frequency buffers, other tasks' heads),
   * against the names without their prefix.
   */
  protected finishLoading(knownUnused: RegExp[]): void {
    const known = (key: string) =>
      this.prefixes.some((p) => key.startsWith(p) && knownUnused.some((re) => re.test(key.slice(p.length))));
    const unused = [...this.weights.keys()].filter((key) => !this.params.has(key) && !known(key));
    this.weights.clear();
    if (unused.length > 0) {
      const shown = unused.slice(0, 10).join(', ') + (unused.length > 10 ? ` and ${unused.length - 10} more` : '');
      this.fail(
        `${this.source}: ${unused.length} checkpoint tensor(s) not used by the ${this.config.model_type} model: ` +
          `${shown} (a checkpoint of another architecture or variant?)`,
      );
    }
  }

  /** Frees what was registered so far (a failed load leaves no variables behind) and throws. */
  private fail(message: string): never {
    this.dispose();
    throw new Error(message);
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
  }
}

/** A decoder-only language model: token ids (B, T) to next-token logits (B, T, V). */
export interface CausalLM {
  readonly config: HfConfig;
  readonly params: Map<string, tf.Variable>;
  readonly vocabSize: number;
  /** Longest sequence the position embeddings allow. */
  readonly maxPositions: number;
  /** torch's train/eval mode: dropout is active only while true. */
  training: boolean;
  forward(inputIds: tf.Tensor2D): tf.Tensor3D;
  dispose(): void;
}

/** A bidirectional encoder: token ids and attention mask (B, T) to the last hidden state (B, T, C). */
export interface Encoder {
  readonly config: HfConfig;
  readonly params: Map<string, tf.Variable>;
  readonly hiddenSize: number;
  readonly maxPositions: number;
  forward(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, tokenTypeIds?: tf.Tensor2D): tf.Tensor3D;
  dispose(): void;
}

export type CausalLMClass = { fromCheckpoint(ckpt: HfCheckpoint): CausalLM };
export type EncoderClass = { fromCheckpoint(ckpt: HfCheckpoint): Encoder };

export function configNumber(config: HfConfig, ...keys: string[]): number {
  for (const key of keys) {
    const v = config[key];
    if (typeof v === 'number') return v;
  }
  throw new Error(`config.json (model_type ${config.model_type}) has none of ${keys.join(', ')}`);
}
