// The gateway's GraphiQL page: our code around the pinned GraphiQL release.
// Loaded as a file, not inline, so the page's Content-Security-Policy can stay 'self'.
"use strict";
(function () {
  const authOn = document.querySelector('meta[name="gateway-auth"]').content === "on";
  document.documentElement.dataset.auth = authOn ? "on" : "off";
  // Same origin, same path the page came from: works behind a path prefix too.
  const post = GraphiQL.createFetcher({ url: window.location.pathname });
  // A header left empty in the headers editor (the X-API-Key hint before a key
  // is pasted) is not sent, so an empty hint never counts as a wrong key.
  const fetcher = (params, opts) => {
    const headers = {};
    for (const [name, value] of Object.entries((opts && opts.headers) || {})) {
      if (value !== "" && value !== null && value !== undefined) headers[name] = value;
    }
    return post(params, Object.assign({}, opts, { headers }));
  };
  const props = {
    fetcher,
    isHeadersEditorEnabled: true,
    // Keys typed into the headers editor stay in this tab, never in localStorage.
    shouldPersistHeaders: false,
    defaultEditorToolsVisibility: authOn ? "headers" : false,
    defaultQuery:
      "# Coworking analytics. Ctrl+Enter runs the query; Docs (left) lists the schema.\n" +
      "{\n  summary { users activeUsers tokensIssued tokensUsed usageRate }\n" +
      '  usageByDay(granularity: DAY, timezone: "UTC") { date visits tokensIssued uniqueUsers }\n}\n',
  };
  if (authOn) props.defaultHeaders = JSON.stringify({ "X-API-Key": "" }, null, 2);
  // A link can carry a query: /graphql#query=...&variables=...
  const link = new URLSearchParams(window.location.hash.slice(1));
  if (link.get("query")) props.query = link.get("query");
  if (link.get("variables")) props.variables = link.get("variables");
  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(GraphiQL, props));
})();
