"""quizroom.clients"""
