/**
 * The ids Bedrock accepts where a model goes: a model id (`anthropic.claude-...-v1:0`), a
 * system inference profile's id (the model id behind a geography, `us.anthropic....`), or the
 * ARN of either (`arn:aws:bedrock:us-west-2::foundation-model/anthropic....`,
 * `arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic....`).
 * @module
 */

/** The geographies of Bedrock's cross-region (system) inference profiles. */
const GEO_PREFIX = /^(?:us|eu|apac|au|jp|ca|us-gov|global)\./;

/**
 * A foundation model's or a system inference profile's ARN. Application inference profiles,
 * provisioned and custom models have opaque ids that name no model: they are not matched.
 */
const MODEL_ARN =
  /^arn:aws[a-z-]*:bedrock:[a-z0-9-]*:\d*:(?:foundation-model|inference-profile)\/(.+)$/;

/**
 * The id an ARN names (`...:inference-profile/us.anthropic....` -> `us.anthropic....`,
 * `...::foundation-model/anthropic....` -> `anthropic....`); any other id as it is. What a model
 * is priced as: the same model costs the same however it is named.
 */
export function bedrockModelId(model: string): string {
  return MODEL_ARN.exec(model)?.[1] ?? model;
}

/**
 * The base model id behind a profile id or an ARN (`us.anthropic....` -> `anthropic....`).
 * CountTokens takes only this: for an inference profile it answers 400 "The provided model
 * doesn't support counting tokens".
 */
export function bedrockBaseModelId(model: string): string {
  return bedrockModelId(model).replace(GEO_PREFIX, "");
}
