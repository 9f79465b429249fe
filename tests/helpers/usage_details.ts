/** OpenAI's `completion_tokens_details`, as every translated answer carries it in full. */
export function completionDetails(reasoning = 0) {
  return {
    reasoning_tokens: reasoning,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0,
  };
}
