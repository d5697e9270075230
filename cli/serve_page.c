/* serve_page.c — the page raddino serve answers at "/" is cli/serve_page.html, embedded at
 * build time as serve_page_html (cmake/embed.cmake writes it as a C array): one static HTML
 * file, no external assets. It holds no data: stats, results, thumbnails and clusters are
 * fetched from the JSON API (with the token, kept in the tab's sessionStorage, when the server
 * has one); every stored string is shown through textContent, never parsed as HTML. /?id=N
 * opens with that image as the query (the address is updated on every search by id: a
 * permalink); results are paged (k per page, the API asked for one page more than shown). The
 * server sends a Content-Security-Policy naming this page's one script and one style block by
 * their sha256 (computed from the embedded bytes when it starts), so the page must not gain
 * inline event handlers or style attributes. */

/* The icon at /favicon.ico (browsers ask for it): a small SVG, no bytes of anyone's image. */
const char serve_favicon_svg[] =
    "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">"
    "<rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#2a4a7a\"/>"
    "<path d=\"M8 3v10M4 5c2 1 2 5 0 7M12 5c-2 1-2 5 0 7\" stroke=\"#fff\" fill=\"none\"/>"
    "</svg>\n";
