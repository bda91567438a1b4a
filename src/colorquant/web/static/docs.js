// Swagger UI for /openapi.json; a file of its own, as the Content-Security-Policy allows no inline script.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
