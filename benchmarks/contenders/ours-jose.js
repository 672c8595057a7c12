// This project, as users meet it: unmodified jose SignJWT, routed to the token by hsm.installGlobal().
import { runContender } from '../lib/contender.js'
import { openOurs } from '../lib/ours.js'

runContender(({ alg, token }) => openOurs({ alg, token, via: 'jose' }))
