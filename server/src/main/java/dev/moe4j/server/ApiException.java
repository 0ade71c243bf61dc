package dev.moe4j.server;

/**
 * A request the API refuses: the HTTP status and what goes into the OpenAI-style error object {@code {"error":
 * {"message", "type", "param", "code"}}}.
 */
final class ApiException extends RuntimeException {
    final int status;
    final String type;
    final String param;

    ApiException(int status, String type, String param, String message) {
        this(status, type, param, message, null);
    }

    ApiException(int status, String type, String param, String message, Throwable cause) {
        super(message, cause);
        this.status = status;
        this.type = type;
        this.param = param;
    }

    /** HTTP 400: the request is malformed; {@code param} names the field at fault (null when it is the body). */
    static ApiException invalid(String param, String message) {
        return new ApiException(400, "invalid_request_error", param, message);
    }
}
