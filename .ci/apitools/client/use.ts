// Uses the types generated from docs/api/openapi.yaml the way a client
// would, so that tsc checks the generated file and that the shapes a client
// relies on are there with the right types.
import type { components, paths } from "./openapi";

type Message = components["schemas"]["MessageView"];
type Page = paths["/api/v1/conversations/{id}/messages"]["get"]["responses"][200]["content"]["application/json"];
type Login = paths["/auth/login"]["post"]["responses"][200]["content"]["application/json"];

export function newest(page: Page): Message | undefined {
  const messages: Message[] = page.data.messages;
  return messages[messages.length - 1];
}

export function whoAmI(login: Login): string {
  const name: string | null = login.user.display_name;
  return name ?? login.user.username;
}

export const cursor = (page: Page): number | null => page.data.next_cursor;
