/// Docs/openapi.yaml, served at `GET /api/openapi.yaml`. A test checks that the two are byte-identical: edit the
/// YAML file, then paste it here between the delimiters.
enum OpenAPIDocument {
    static let yaml = #"""
openapi: 3.1.0
info:
  title: umsd HTTP API
  version: "1"
  description: >-
    The HTTP API of `umsd serve`: images in the image folder and the drives (LUNs) of the USB mass-storage gadget.
    Docs/http-api.md is the prose version. On loopback no credentials are needed; elsewhere a bearer token
    (http.token_file) or HTTP basic auth (http.basic_auth).
servers:
  - url: http://127.0.0.1:8780
security:
  - {}
  - bearer: []
  - basic: []
paths:
  /api/state:
    get:
      summary: Everything at once
      operationId: getState
      responses:
        "200":
          description: The connection, drives, images, parts and transfers.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/State"}
        default: {$ref: "#/components/responses/Error"}
  /api/images:
    get:
      summary: The images and the storage parts
      operationId: listImages
      responses:
        "200":
          description: The images (with the drives holding each) and the parts.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Images"}
        default: {$ref: "#/components/responses/Error"}
    post:
      summary: Upload an image as multipart/form-data
      description: >-
        A `file` part; its filename is the image name unless a `name` field comes before it. A `replace` field (or
        query) of `1` replaces an existing image that no drive holds.
      operationId: uploadImageForm
      parameters:
        - {$ref: "#/components/parameters/Replace"}
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              type: object
              required: [file]
              properties:
                name: {type: string}
                replace: {type: string, enum: ["0", "1"]}
                file: {type: string, format: binary}
      responses:
        "201":
          description: The new image.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Image"}
        default: {$ref: "#/components/responses/Error"}
  /api/images/rescan:
    post:
      summary: Read the image folder again
      operationId: rescanImages
      responses:
        "200":
          description: The images and parts after the rescan.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Images"}
        default: {$ref: "#/components/responses/Error"}
  /api/images/create:
    post:
      summary: Create an empty flash image
      operationId: createImage
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/CreateRequest"}
      responses:
        "201":
          description: The new image.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Image"}
        default: {$ref: "#/components/responses/Error"}
  /api/images/{name}:
    parameters:
      - {$ref: "#/components/parameters/ImageName"}
    get:
      summary: Download an image
      operationId: downloadImage
      parameters:
        - name: Range
          in: header
          required: false
          description: One range, `bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX`; several ranges get the whole image.
          schema: {type: string}
      responses:
        "200":
          description: The whole image.
          headers:
            Accept-Ranges: {schema: {type: string}}
            Content-Disposition: {schema: {type: string}}
          content:
            application/octet-stream:
              schema: {type: string, format: binary}
        "206":
          description: The range asked for.
          headers:
            Content-Range: {schema: {type: string}}
          content:
            application/octet-stream:
              schema: {type: string, format: binary}
        default: {$ref: "#/components/responses/Error"}
    head:
      summary: An image's size and download headers
      operationId: headImage
      responses:
        "200":
          description: The headers of a download, without the bytes.
        default:
          description: An error (headers only).
    put:
      summary: Upload an image as the raw request body
      description: >-
        The body streams into a hidden temporary file that becomes the image only once complete. A closed connection
        or DELETE /api/transfers/{id} aborts and removes it.
      operationId: uploadImage
      parameters:
        - {$ref: "#/components/parameters/Replace"}
        - name: id
          in: query
          required: false
          description: A transfer id chosen by the client, to follow or abort the upload.
          schema: {type: string, pattern: "^[A-Za-z0-9_-]{1,64}$"}
      requestBody:
        required: true
        content:
          application/octet-stream:
            schema: {type: string, format: binary}
      responses:
        "201":
          description: The new image.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Image"}
        default: {$ref: "#/components/responses/Error"}
    delete:
      summary: Remove an image
      operationId: removeImage
      responses:
        "204":
          description: Removed.
        default: {$ref: "#/components/responses/Error"}
  /api/transfers:
    get:
      summary: Uploads, downloads and creations in progress
      operationId: listTransfers
      responses:
        "200":
          description: The transfers.
          content:
            application/json:
              schema:
                type: object
                required: [transfers]
                properties:
                  transfers:
                    type: array
                    items: {$ref: "#/components/schemas/Transfer"}
        default: {$ref: "#/components/responses/Error"}
  /api/transfers/{id}:
    delete:
      summary: Abort an upload
      operationId: abortTransfer
      parameters:
        - name: id
          in: path
          required: true
          schema: {type: string}
      responses:
        "204":
          description: Aborted; its temporary file is removed.
        default: {$ref: "#/components/responses/Error"}
  /api/drives:
    get:
      summary: The drives and the connection
      operationId: listDrives
      responses:
        "200":
          description: The drives.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Drives"}
        default: {$ref: "#/components/responses/Error"}
  /api/drives/{lun}:
    post:
      summary: Change a drive
      description: >-
        Type and writability first, then the medium. `"image": null` ejects; `force` takes the medium out even if
        the host holds it (otherwise the host is asked, and the result is `eject-requested`).
      operationId: changeDrive
      parameters:
        - {$ref: "#/components/parameters/LUN"}
      requestBody:
        required: false
        content:
          application/json:
            schema: {$ref: "#/components/schemas/DriveChange"}
      responses:
        "200":
          description: The drives after the change.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Drives"}
        default: {$ref: "#/components/responses/Error"}
  /api/drives/{lun}/eject:
    post:
      summary: Take the medium out of a drive
      operationId: ejectDrive
      parameters:
        - {$ref: "#/components/parameters/LUN"}
      requestBody:
        required: false
        content:
          application/json:
            schema:
              type: object
              properties:
                force: {type: boolean}
      responses:
        "200":
          description: The drives after the eject.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Drives"}
        default: {$ref: "#/components/responses/Error"}
  /api/connect:
    post:
      summary: Plug the virtual cable in
      operationId: connect
      responses:
        "200":
          description: The drives.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Drives"}
        default: {$ref: "#/components/responses/Error"}
  /api/disconnect:
    post:
      summary: Pull the virtual cable
      operationId: disconnect
      responses:
        "200":
          description: The drives.
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Drives"}
        default: {$ref: "#/components/responses/Error"}
  /api/events:
    get:
      summary: Server-sent events
      description: >-
        `state` (the whole State, first on connect and on every change, at most 4/s), `transfer` (a Transfer, at most
        4/s each), `transfer-end` (a TransferEnd); a `: ping` comment every 15 s. At most 32 streams are open at
        once; one more is refused with 503 `busy`.
      operationId: events
      responses:
        "200":
          description: An event stream that does not end.
          content:
            text/event-stream:
              schema: {type: string}
        default: {$ref: "#/components/responses/Error"}
  /api/openapi.yaml:
    get:
      summary: This document
      operationId: openAPI
      responses:
        "200":
          description: OpenAPI 3.1.
          content:
            application/yaml:
              schema: {type: string}
  /:
    get:
      summary: The web page
      operationId: page
      responses:
        "200":
          description: HTML.
          content:
            text/html:
              schema: {type: string}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    basic: {type: http, scheme: basic}
  parameters:
    ImageName:
      name: name
      in: path
      required: true
      description: >-
        The image name relative to the image folder, `/`-separated, every segment percent-encoded (1-255 bytes, not
        starting with `.`, no control characters or `\`; at most 8 segments and 1024 bytes).
      schema: {type: string}
    LUN:
      name: lun
      in: path
      required: true
      schema: {type: integer, minimum: 0}
    Replace:
      name: replace
      in: query
      required: false
      schema: {type: string, enum: ["0", "1"]}
  responses:
    Error:
      description: >-
        A refusal. Codes and statuses: bad-request 400, bad-name 400, unauthorized 401, not-found 404,
        no-such-drive 404, exists 409, image-in-use 409, read-only 409, cdrom-read-only 409, image 409, aborted 409,
        too-large 413, range 416, rate-limited 429, internal 500, daemon 503, busy 503, no-space 507.
      content:
        application/json:
          schema: {$ref: "#/components/schemas/Error"}
  schemas:
    Error:
      type: object
      required: [error]
      properties:
        error:
          type: object
          required: [code, message]
          properties:
            code: {type: string}
            message: {type: string}
    Drive:
      type: object
      required: [lun, cdrom, writable, image, present, locked, trayOpen, queuedImage, problem]
      properties:
        lun: {type: integer}
        cdrom: {type: boolean}
        writable: {type: boolean}
        image: {type: [string, "null"], description: "A name in the store, or an absolute path outside it."}
        present: {type: boolean}
        locked: {type: boolean}
        trayOpen: {type: boolean}
        queuedImage: {type: [string, "null"]}
        problem:
          type: [string, "null"]
          description: >-
            What is wrong with the served image, in a sentence (deleted or shrunk while served, a failed write);
            loading the image again clears it.
    Image:
      type: object
      required: [name, part, size, mtime, complete, inUse, writable]
      properties:
        name: {type: string}
        part: {type: string}
        size: {type: integer, format: int64}
        mtime: {type: string, format: date-time}
        complete: {type: boolean}
        inUse: {type: array, items: {type: integer}}
        writable: {type: boolean}
    Part:
      type: object
      required: [name, path, size, free, writable]
      properties:
        name: {type: string}
        path: {type: string}
        size: {type: integer, format: int64}
        free: {type: integer, format: int64}
        writable: {type: boolean}
    Transfer:
      type: object
      required: [id, kind, name, bytes, total, started]
      properties:
        id: {type: string}
        kind: {type: string, enum: [upload, download, create]}
        name: {type: string}
        bytes: {type: integer, format: int64}
        total: {type: [integer, "null"], format: int64}
        started: {type: string, format: date-time}
    TransferEnd:
      type: object
      required: [id, kind, name, result]
      properties:
        id: {type: string}
        kind: {type: string}
        name: {type: string}
        result: {type: string, enum: [done, aborted, failed]}
        error:
          type: object
          properties:
            code: {type: string}
            message: {type: string}
    State:
      type: object
      required: [connected, drives, images, parts, transfers]
      properties:
        connected: {type: boolean}
        drives: {type: array, items: {$ref: "#/components/schemas/Drive"}}
        images: {type: array, items: {$ref: "#/components/schemas/Image"}}
        parts: {type: array, items: {$ref: "#/components/schemas/Part"}}
        transfers: {type: array, items: {$ref: "#/components/schemas/Transfer"}}
    Images:
      type: object
      required: [images, parts]
      properties:
        images: {type: array, items: {$ref: "#/components/schemas/Image"}}
        parts: {type: array, items: {$ref: "#/components/schemas/Part"}}
    Drives:
      type: object
      required: [connected, drives]
      properties:
        result: {type: string, enum: [done, eject-requested]}
        connected: {type: boolean}
        drives: {type: array, items: {$ref: "#/components/schemas/Drive"}}
    DriveChange:
      type: object
      properties:
        image: {type: [string, "null"], description: "An image name to load, or null to eject."}
        cdrom: {type: boolean}
        writable: {type: boolean}
        force: {type: boolean}
    CreateRequest:
      type: object
      required: [name, size]
      properties:
        name: {type: string}
        size:
          oneOf:
            - {type: integer, minimum: 1}
            - {type: string, description: "A number with K, M, G or T (powers of 1024), e.g. 1G."}
        filesystem: {type: string, enum: [none, vfat, exfat], default: none}
        partitioned: {type: boolean, default: true}
        label: {type: string}
        replace: {type: boolean, default: false}

"""#
}
