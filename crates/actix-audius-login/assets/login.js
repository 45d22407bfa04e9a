/* Log In with Audius: the popup (postmessage) channel. Served by actix-audius-login.
 *
 * A click on an element with data-audius-popup opens the login route in a 375x785 popup. The
 * popup answers with window.opener.postMessage({state, token}, ourOrigin) ({state, code} in the
 * code flow, {state, error} when declined); a message is accepted
 * only from the Audius login page's origin (data-audius-origin) AND from the popup this script
 * opened. The state and the answer are posted to the callback, which checks the state against the
 * session. Events (bubbling, cancelable) on the button:
 *   audius-login:success   detail {redirect, user}   default: go to detail.redirect
 *   audius-login:error     detail {code, message}    default: show the message
 *   audius-login:abandoned detail {message}          default: show the message
 *   audius-login:blocked   detail {message}          default: show the message
 * Call event.preventDefault() to handle one yourself.
 */
(function () {
  'use strict';
  var MESSAGES = {
    abandoned: 'The login popup was closed prematurely.',
    blocked: 'The login popup was blocked. Allow pop-ups for this site and try again.',
    failed: 'The login failed. Please try again.'
  };

  function showStatus(button, text) {
    var id = button.getAttribute('data-audius-status');
    var el = id ? document.getElementById(id) : null;
    if (el) {
      el.textContent = text;
      el.hidden = !text;
    }
  }

  function emit(button, name, detail) {
    var event = new CustomEvent('audius-login:' + name, {
      bubbles: true,
      cancelable: true,
      detail: detail
    });
    return button.dispatchEvent(event);
  }

  function report(button, name, detail) {
    if (emit(button, name, detail)) {
      showStatus(button, detail.message);
    }
  }

  function start(button) {
    var audiusOrigin = button.getAttribute('data-audius-origin');
    var callback = button.getAttribute('data-audius-callback');
    var width = 375;
    var height = 785;
    var left = window.screenX + Math.max(0, (window.outerWidth - width) / 2);
    var top = window.screenY + Math.max(0, (window.outerHeight - height) / 2);
    var popup = window.open(
      button.getAttribute('href'),
      'audius-login',
      'popup=yes,width=' + width + ',height=' + height + ',left=' + left + ',top=' + top
    );
    if (!popup) {
      report(button, 'blocked', { message: MESSAGES.blocked });
      return;
    }
    showStatus(button, '');
    var done = false;
    var timer = null;

    function finish() {
      done = true;
      window.removeEventListener('message', onMessage);
      if (timer !== null) {
        clearInterval(timer);
      }
    }

    function onMessage(event) {
      // Only the Audius login page, in the popup we opened, may answer.
      if (done || event.origin !== audiusOrigin || event.source !== popup) {
        return;
      }
      var data = event.data;
      // {state, token} (implicit flow), {state, code} (code flow) or {state, error}.
      var name = ['token', 'code', 'error'].filter(function (n) {
        return data && typeof data === 'object' && typeof data[n] === 'string';
      })[0];
      if (!name || typeof data.state !== 'string' || data.state.length > 512 ||
          data[name].length > 16384) {
        return;
      }
      var answer = { state: data.state };
      answer[name] = data[name];
      if (name === 'error' && typeof data.error_description === 'string') {
        answer.error_description = data.error_description.slice(0, 1024);
      }
      finish();
      try {
        popup.close();
      } catch (ignored) {
        /* the popup may already be gone */
      }
      fetch(callback, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
        body: JSON.stringify(answer)
      }).then(function (response) {
        return response.json().then(function (body) {
          return { ok: response.ok, body: body };
        });
      }).then(function (result) {
        if (result.ok) {
          if (emit(button, 'success', result.body)) {
            window.location.assign(result.body.redirect);
          }
        } else {
          report(button, 'error', {
            code: result.body && result.body.error,
            message: (result.body && result.body.message) || MESSAGES.failed
          });
        }
      }).catch(function () {
        report(button, 'error', { code: 'network', message: MESSAGES.failed });
      });
    }

    window.addEventListener('message', onMessage);
    timer = setInterval(function () {
      if (done || !popup.closed) {
        return;
      }
      clearInterval(timer);
      timer = null;
      // A message posted just before the popup closed may still be on its way: wait a moment.
      setTimeout(function () {
        if (!done) {
          finish();
          report(button, 'abandoned', { message: MESSAGES.abandoned });
        }
      }, 300);
    }, 500);
  }

  document.addEventListener('click', function (event) {
    var target = event.target;
    var button = target && target.closest ? target.closest('[data-audius-popup]') : null;
    if (!button) {
      return;
    }
    event.preventDefault();
    start(button);
  });
})();
