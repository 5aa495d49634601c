// The name rules of SPEC §1, as shared/src/names.rs checks them, for live feedback while typing.
// The API checks again; its answer wins.

export function accountName(name) {
  return /^[a-z0-9-]{3,32}$/.test(name)
    ? ""
    : "must be 3 to 32 characters of lowercase letters, digits and hyphens";
}

export function integrationName(name) {
  const ok = /^[A-Za-z0-9._-]{2,62}$/.test(name) && !/^[0-9]/.test(name) && name !== "..";
  return ok
    ? ""
    : "must be 2 to 62 characters of letters, digits, '-', '_' or '.', not starting with a digit";
}

export function baseUrl(url) {
  if (!/^https?:\/\/[^/\s]+/.test(url)) return "must be an http:// or https:// URL";
  if (url.endsWith("/")) return "must not end with a slash";
  return "";
}

// "user:ada@example.com, team:ml" -> ["user:ada@example.com", "team:ml"]
export function subjectList(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}
