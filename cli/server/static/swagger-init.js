"use strict";
// Swagger UI for /docs, from the installed swagger-ui-bundle package (a file, so the page needs no inline script)
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
