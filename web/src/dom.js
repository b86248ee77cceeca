// Building DOM nodes from text: used by the consultation page's panels (comments, proposals, survey)
// and the moderation page. Attributes are set as strings and children appended as nodes or text, so
// nothing from the server is ever parsed as HTML.

/**
 * A new element: `attrs` set as attributes (true: present, false or null: left out), `children`
 * appended (strings become text nodes).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === true) node.setAttribute(key, '');
    else if (value !== false && value != null) node.setAttribute(key, String(value));
  }
  node.append(...children);
  return node;
}
