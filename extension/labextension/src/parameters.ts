/**
 * The dialog's parameters: a JSON object, or `key=value` lines (a value that reads as JSON is that value, else text).
 */
export function parseParameters(text: string): Record<string, unknown> {
  const trimmed = text.trim();
  if (!trimmed) {
    return {};
  }
  if (trimmed.startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (error) {
      throw new Error(`The parameters are not valid JSON: ${(error as Error).message}`);
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      throw new Error('The parameters are a JSON object, like {"day": "2026-01-31"}.');
    }
    return value as Record<string, unknown>;
  }
  const result: Record<string, unknown> = {};
  trimmed.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) {
      return;
    }
    const eq = line.indexOf('=');
    const key = eq > 0 ? line.slice(0, eq).trim() : '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new Error(`Line ${index + 1} of the parameters is not name=value (a name is a Python identifier).`);
    }
    const value = line.slice(eq + 1).trim();
    try {
      result[key] = JSON.parse(value);
    } catch {
      result[key] = value;
    }
  });
  return result;
}
